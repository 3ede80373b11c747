-- Which statement breaks have been through the rules (issue 16): one row per break and period,
-- a new version whenever its state changes. A break that has a row is never evaluated again, so
-- re-importing a file or re-running a period opens no second case; a break missing from its
-- period's latest run turns 'cleared' (the case it fed is resolved, or noted, by statements/cases.ts).
-- evidence is the break as the case shows it (JSON), so a case's list of breaks can be rebuilt
-- without the run that found them.
CREATE TABLE IF NOT EXISTS {db}.statement_break_cases
(
    channel String,
    period_from DateTime('UTC'),
    period_to DateTime('UTC'),
    break_id String,
    version UInt64,
    state Enum8('open' = 1, 'cleared' = 2),
    kind String,
    order_id String,
    case_id String,
    rule_id String,
    run_version UInt64,
    evidence String
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (channel, period_from, period_to, break_id);
