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
