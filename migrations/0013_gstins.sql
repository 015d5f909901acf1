-- Seller GSTINs managed at run time (issue 27): `einvoice-worker gstin add|update|rotate-password|
-- disable|enable|list` writes here, and every worker applies a change within seconds without a
-- restart. A GSTIN defined in the configuration file or environment is not read from here (the
-- file wins; see docs/operations.md).
CREATE TABLE gstins (
    gstin       text PRIMARY KEY,
    -- The GSTIN's settings as in a `[gstins."<GSTIN>"]` section, without the secrets (provider,
    -- IRPs and failover, rate limit, UPI id, …): what `gstin list` shows without any key.
    settings    jsonb NOT NULL,
    -- The whole section, secrets included, sealed (AES-256-GCM) under the first
    -- EINVOICE_TOKEN_KEY; any key of the list opens it, and a worker re-seals a row still
    -- under an older key.
    sealed      bytea NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    -- Bumped by every change an operator makes: what the workers compare to see a change.
    version     bigint NOT NULL DEFAULT 1,
    -- Bumped by a new password or client secret: a worker that sees it move drops the GSTIN's
    -- cached sessions, so the next token is asked for with the new credentials.
    credentials_version bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change is announced on `einvoice_gstins` (the GSTIN and its new version; never a
-- setting, never a secret): the workers re-read that one row.
CREATE FUNCTION gstins_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('einvoice_gstins', json_build_object('gstin', OLD.gstin, 'version', 0)::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        -- A re-seal under a new token key changes no setting.
        RETURN NEW;
    END IF;
    PERFORM pg_notify('einvoice_gstins', json_build_object('gstin', NEW.gstin, 'version', NEW.version)::text);
    RETURN NEW;
END $$;

CREATE TRIGGER gstins_notify AFTER INSERT OR UPDATE OR DELETE ON gstins
    FOR EACH ROW EXECUTE FUNCTION gstins_notify();
