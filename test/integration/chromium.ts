import { existsSync } from 'node:fs';

/** Where Debian's chromium keeps the browser itself (/usr/bin/chromium is a shell wrapper around it). */
export const CHROMIUM_PATHS = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];

/** The installed chromium, or undefined (global-setup installs it with apt-get when missing). */
export const chromiumPath = (): string | undefined => CHROMIUM_PATHS.find((p) => existsSync(p));
