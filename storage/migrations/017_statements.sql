-- Payment platforms' statements (issue 16). A file is identified by the SHA-256 of its bytes;
-- its row is written after all its lines, so a file without a row was not (completely)
-- imported and importing it again is safe. Both tables fold an exact re-insert by their key.
CREATE TABLE IF NOT EXISTS {db}.statement_files
(
    file_hash String,
    file_name String,
    format String,
    channel String,
    period_from DateTime('UTC'),
    period_to DateTime('UTC'),
    size_bytes UInt64,
    lines_settled UInt64,
    lines_not_settled UInt64,
    lines_invalid UInt64,
    imported_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(imported_at)
ORDER BY file_hash;

-- Every line of every imported file, in the generic format's terms whatever the file's format:
-- amounts in minor units (refunds positive), the fee exactly as fee_units / 10^fee_scale in
-- major units (platforms report it finer than the currency: WeChat Pay to 5 decimals). status
-- 'invalid' lines (kept with --skip-invalid) and 'not_settled' lines (a revoked trade, a payout)
-- carry their reason; only 'settled' lines are reconciled. raw is the line as in the file.
CREATE TABLE IF NOT EXISTS {db}.statement_lines
(
    file_hash String,
    line UInt32,
    raw String,
    status Enum8('settled' = 1, 'not_settled' = 2, 'invalid' = 3),
    reason String,
    column_name String,
    channel String,
    period_from DateTime('UTC'),
    period_to DateTime('UTC'),
    transaction_id String,
    order_id String,
    type String,
    amount_minor Int64,
    currency String,
    occurred_at DateTime('UTC'),
    occurred_ms UInt16,
    fee_units Nullable(Int64),
    fee_scale UInt8,
    refund_id String,
    imported_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(imported_at)
PARTITION BY toYYYYMM(period_from)
ORDER BY (channel, period_from, file_hash, line);

-- One row per reconciliation run of a (channel, period): what it read and found. Each run writes
-- its matches and breaks under a new version; readers keep the latest version of each period, so
-- re-running a period replaces its results (also when the new run finds fewer breaks).
CREATE TABLE IF NOT EXISTS {db}.statement_runs
(
    channel String,
    period_from DateTime('UTC'),
    period_to DateTime('UTC'),
    version UInt64,
    computed_at DateTime('UTC'),
    window_from DateTime('UTC'),
    window_to DateTime('UTC'),
    lines UInt64,
    attempts UInt64,
    refunds UInt64,
    matched UInt64,
    breaks UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (channel, period_from, period_to, version);

-- Statement lines matched to our attempt (type payment) or refund event (type refund).
CREATE TABLE IF NOT EXISTS {db}.statement_matches
(
    channel String,
    period_from DateTime('UTC'),
    period_to DateTime('UTC'),
    version UInt64,
    file_hash String,
    line UInt32,
    type String,
    matched_by String,
    transaction_id String,
    order_id String,
    attempt UInt16,
    refund_event_id String,
    amount_minor Int64,
    currency String
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(period_from)
ORDER BY (channel, period_from, period_to, version, file_hash, line);

-- One row per break, with both sides' values (has_statement / has_ours say which sides exist).
-- break_id is derived from the kind and the two sides, so a re-run finds the same id for the
-- same disagreement: a later reader (e.g. facts for the rules) can key on it.
CREATE TABLE IF NOT EXISTS {db}.statement_breaks
(
    channel String,
    period_from DateTime('UTC'),
    period_to DateTime('UTC'),
    version UInt64,
    computed_at DateTime('UTC'),
    break_id String,
    kind String,
    detail String,
    order_id String,
    transaction_id String,
    has_statement UInt8,
    statement_file_hash String,
    statement_line UInt32,
    statement_type String,
    statement_amount_minor Int64,
    statement_currency String,
    statement_occurred_at DateTime('UTC'),
    has_ours UInt8,
    our_attempt UInt16,
    our_status String,
    our_refund_event_id String,
    our_amount_minor Int64,
    our_currency String,
    our_occurred_at DateTime('UTC'),
    amount_at_stake_minor Int64,
    currency String
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(period_from)
ORDER BY (channel, period_from, period_to, version, break_id);

-- Files the scheduled statements job found in STATEMENTS_DIR, each handled once: a file whose
-- path, size and modification time are recorded is not read again (a changed file is new).
CREATE TABLE IF NOT EXISTS {db}.statement_inbox
(
    file_path String,
    size_bytes UInt64,
    modified_at DateTime('UTC'),
    seen_at DateTime('UTC'),
    status String,
    file_hash String,
    reason String
)
ENGINE = ReplacingMergeTree(seen_at)
ORDER BY (file_path, size_bytes, modified_at);
