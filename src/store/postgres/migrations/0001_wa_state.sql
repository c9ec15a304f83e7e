-- whatsapp-rust's state of every company (src/wa/backend over
-- src/store/postgres/wa_rows.rs): the same keys and values as sled's
-- `device` and `wa` trees, so a row (sealed or not) means the same in both
-- stores. `key` starts with the company prefix too (src/store/keys.rs); the
-- `company` column scopes every statement, and wipes, to one company.

CREATE TABLE wa_device (
    company text PRIMARY KEY,
    value   bytea NOT NULL
);

CREATE TABLE wa_state (
    company text  NOT NULL,
    key     bytea NOT NULL,
    value   bytea NOT NULL,
    -- Prefix scans (one category of one company) are range scans of this index.
    PRIMARY KEY (company, key)
);
