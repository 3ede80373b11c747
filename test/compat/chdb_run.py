"""Runs SQL statements through chdb (a current ClickHouse engine, in-process) to prove they
still parse and execute on current ClickHouse. Reads a JSON list of {"name", "sql"} on stdin,
prints a JSON list of {"name", "ok", "error"} on stdout."""
import json
import sys
import tempfile

try:
    from chdb import session as chs
except ImportError as exc:  # reported by the caller as a failed check with this hint
    print(json.dumps({"fatal": f"chdb is not installed ({exc}); run: python3 -m pip install chdb"}))
    sys.exit(0)

statements = json.load(sys.stdin)
results = []
with tempfile.TemporaryDirectory() as path:
    sess = chs.Session(path)
    version = sess.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
    for st in statements:
        try:
            ext = st.get("external")
            if ext:
                # chdb has no HTTP external data: a table of the same name stands in for it.
                sess.query(f"CREATE TABLE IF NOT EXISTS default.{ext['name']} ({ext['structure']}) ENGINE = Memory")
            sess.query(st["sql"], "JSONEachRow")
            results.append({"name": st["name"], "ok": True})
        except Exception as exc:  # chdb raises a plain Exception carrying ClickHouse's message
            results.append({"name": st["name"], "ok": False, "error": str(exc)[:500]})
    sess.close()
print(json.dumps({"version": version, "results": results}))
