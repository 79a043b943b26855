-- mod_promptenchanter schema for SQLite (mod_dbd driver sqlite3).
-- Applied by the module at start-up, one version at a time; each version's statements run in
-- one transaction and record themselves in pe_schema_version. Statements end with ";" at the
-- end of a line. Times are UTC microseconds since the epoch (BIGINT).
-- @version 1
CREATE TABLE IF NOT EXISTS pe_users (
    id VARCHAR(32) PRIMARY KEY,
    username VARCHAR(50) NOT NULL UNIQUE,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(254) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    about_me TEXT NOT NULL DEFAULT '',
    hobbies TEXT NOT NULL DEFAULT '',
    user_type VARCHAR(20) NOT NULL DEFAULT 'Personal',
    subscription_plan VARCHAR(50) NOT NULL DEFAULT 'free',
    credits_main BIGINT NOT NULL DEFAULT 0,
    credits_reset BIGINT NOT NULL DEFAULT 0,
    conv_limit BIGINT NOT NULL DEFAULT 0,
    conv_reset BIGINT NOT NULL DEFAULT 0,
    reset_day BIGINT NOT NULL DEFAULT 0,
    access_rtype VARCHAR(200) NOT NULL DEFAULT '',
    level VARCHAR(20) NOT NULL DEFAULT 'low',
    additional_notes TEXT NOT NULL DEFAULT '',
    api_key_digest CHAR(64) NOT NULL UNIQUE,
    api_key_prefix VARCHAR(16) NOT NULL,
    api_key_enc TEXT NOT NULL,
    is_active SMALLINT NOT NULL DEFAULT 1,
    is_verified SMALLINT NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login BIGINT NOT NULL DEFAULT 0,
    last_activity BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pe_sessions (
    id VARCHAR(32) PRIMARY KEY,
    principal_kind VARCHAR(10) NOT NULL,
    principal_id VARCHAR(32) NOT NULL,
    token_digest CHAR(64) NOT NULL UNIQUE,
    refresh_digest CHAR(64) NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    refresh_expires_at BIGINT NOT NULL,
    ip_address VARCHAR(45) NOT NULL DEFAULT '',
    user_agent VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_used BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pe_sessions_principal ON pe_sessions (principal_kind, principal_id);
CREATE TABLE IF NOT EXISTS pe_deleted_users (
    id VARCHAR(40) PRIMARY KEY,
    original_user_id VARCHAR(32) NOT NULL,
    username VARCHAR(50) NOT NULL,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(254) NOT NULL,
    user_type VARCHAR(20) NOT NULL,
    time_created BIGINT NOT NULL,
    subscription_plan VARCHAR(50) NOT NULL,
    deletion_reason TEXT NOT NULL DEFAULT '',
    deleted_at BIGINT NOT NULL,
    deleted_by VARCHAR(100) NOT NULL
);
CREATE TABLE IF NOT EXISTS pe_security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type VARCHAR(50) NOT NULL,
    principal_kind VARCHAR(10) NOT NULL DEFAULT '',
    principal_id VARCHAR(32) NOT NULL DEFAULT '',
    username VARCHAR(100) NOT NULL DEFAULT '',
    ip_address VARCHAR(45) NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    severity VARCHAR(10) NOT NULL DEFAULT 'info',
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pe_security_events_type ON pe_security_events (event_type, created_at);
CREATE INDEX IF NOT EXISTS pe_security_events_principal ON pe_security_events (principal_id, created_at);
CREATE TABLE IF NOT EXISTS pe_message_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id VARCHAR(64) NOT NULL UNIQUE,
    user_id VARCHAR(32) NOT NULL,
    username VARCHAR(50) NOT NULL DEFAULT '',
    model VARCHAR(100) NOT NULL DEFAULT '',
    r_type VARCHAR(20) NOT NULL DEFAULT '',
    research_enabled SMALLINT NOT NULL DEFAULT 0,
    messages TEXT NOT NULL DEFAULT '[]',
    response TEXT NOT NULL DEFAULT '',
    status INTEGER NOT NULL DEFAULT 0,
    tokens_used BIGINT NOT NULL DEFAULT 0,
    processing_time_ms BIGINT NOT NULL DEFAULT 0,
    ip_address VARCHAR(45) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pe_message_logs_user ON pe_message_logs (user_id, created_at);
CREATE TABLE IF NOT EXISTS pe_blocked_ips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    network VARCHAR(50) NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_by VARCHAR(100) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pe_ip_whitelist (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    network VARCHAR(50) NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_by VARCHAR(100) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL DEFAULT 0
);
-- @version 2
-- System prompts set by administrators: the text of r_type custom, and overrides of the built-in
-- styles (bpe, bcot, hcot, react, tot). Read by the completion routes.
CREATE TABLE IF NOT EXISTS pe_system_prompts (
    r_type VARCHAR(20) PRIMARY KEY,
    prompt TEXT NOT NULL,
    updated_by VARCHAR(100) NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);
-- @version 3
-- The access layer's stored lists (pe_blocked_ips, pe_ip_whitelist): an entry can be switched
-- off without deleting it, and every process reads the active, unexpired entries periodically.
ALTER TABLE pe_blocked_ips ADD COLUMN is_active SMALLINT NOT NULL DEFAULT 1;
ALTER TABLE pe_ip_whitelist ADD COLUMN is_active SMALLINT NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS pe_blocked_ips_active ON pe_blocked_ips (is_active, expires_at);
CREATE INDEX IF NOT EXISTS pe_ip_whitelist_active ON pe_ip_whitelist (is_active, expires_at);
-- @version 4
-- Operators (SPEC 10): administrators (kind 'admin', is_super for super-administrators) and
-- support staff (kind 'support', staff_level new|support|advanced), principals of their own
-- kinds, never users. Usernames and e-mails are unique within a kind.
CREATE TABLE IF NOT EXISTS pe_staff (
    id VARCHAR(32) PRIMARY KEY,
    kind VARCHAR(10) NOT NULL,
    username VARCHAR(50) NOT NULL,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    is_super SMALLINT NOT NULL DEFAULT 0,
    staff_level VARCHAR(20) NOT NULL DEFAULT '',
    created_by VARCHAR(100) NOT NULL DEFAULT '',
    is_active SMALLINT NOT NULL DEFAULT 1,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS pe_staff_username ON pe_staff (kind, username);
CREATE UNIQUE INDEX IF NOT EXISTS pe_staff_email ON pe_staff (kind, email);
-- @version 5
-- E-mail verification: the user's one live code, only as a keyed digest (HMAC-SHA-256 under a
-- key derived from the server secret), its expiry and its count of attempts; and the count of
-- verification mails sent on email_send_day (a day number), for the daily limit.
ALTER TABLE pe_users ADD COLUMN email_code_digest VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE pe_users ADD COLUMN email_code_expires BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pe_users ADD COLUMN email_code_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pe_users ADD COLUMN email_send_day BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pe_users ADD COLUMN email_sends INTEGER NOT NULL DEFAULT 0;
-- @version 6
-- API-usage records (SPEC 11.3): one row per request authenticated with a user's API key. No key
-- is stored (SPEC 16.2 item 21): the user id and the key's public prefix name the caller. Rows
-- older than PEUsageLogRetention are removed by the log writer, in bounded steps (created_at index).
CREATE TABLE IF NOT EXISTS pe_api_usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id VARCHAR(64) NOT NULL UNIQUE,
    user_id VARCHAR(32) NOT NULL,
    key_prefix VARCHAR(16) NOT NULL DEFAULT '',
    endpoint VARCHAR(255) NOT NULL DEFAULT '',
    method VARCHAR(16) NOT NULL DEFAULT '',
    status_code INTEGER NOT NULL DEFAULT 0,
    response_time_ms BIGINT NOT NULL DEFAULT 0,
    tokens_used BIGINT NOT NULL DEFAULT 0,
    ip_address VARCHAR(45) NOT NULL DEFAULT '',
    user_agent VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    date VARCHAR(10) NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS pe_api_usage_user ON pe_api_usage (user_id, created_at);
CREATE INDEX IF NOT EXISTS pe_api_usage_created ON pe_api_usage (created_at);
