-- Every token carries the account's version when it was issued; bumping the version (a
-- role change, "log out everywhere") makes every earlier token, stream tokens included,
-- fail on its next request.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
