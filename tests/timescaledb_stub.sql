-- A STAND-IN for the part of TimescaleDB's API that policy.sql uses, for plain PostgreSQL. It is NOT
-- TimescaleDB (which Debian does not package): it models the documented names and signatures and the
-- behaviour observed on TimescaleDB 2.28 (platform-facts §15):
--   * timescaledb_information.{hypertables, continuous_aggregates, jobs} with the columns policy.sql reads;
--     a continuous aggregate's policies are jobs of its materialization hypertable;
--   * add_{retention,compression}_policy(relation, interval, if_not_exists => ...) return a new job id;
--     when a policy exists they raise 42710, or with if_not_exists return -1 (WARNING when the arguments
--     differ, NOTICE when equal) and change nothing;
--   * add_compression_policy fails with 0A000 while compression is off on the relation;
--   * remove_{retention,compression}_policy(relation, if_exists => ...).
-- The relations public.readings (table) and public.readings_1m / public.agent_metrics_5min (materialized
-- views) are created by the test itself, as the API's migrations would.

CREATE SCHEMA stub;
CREATE SCHEMA timescaledb_information;

CREATE TABLE stub.hypertables (
  schema_name name, table_name name, compression_enabled boolean NOT NULL, PRIMARY KEY (schema_name, table_name)
);
CREATE TABLE stub.caggs (
  view_schema name, view_name name, mat_schema name, mat_name name, compression_enabled boolean NOT NULL,
  PRIMARY KEY (view_schema, view_name)
);
CREATE SEQUENCE stub.job_ids START 1000;
CREATE TABLE stub.jobs (
  job_id integer PRIMARY KEY DEFAULT nextval('stub.job_ids'),
  proc_name name NOT NULL, hypertable_schema name NOT NULL, hypertable_name name NOT NULL, config jsonb NOT NULL
);

CREATE VIEW timescaledb_information.hypertables AS
  SELECT schema_name AS hypertable_schema, table_name AS hypertable_name, compression_enabled FROM stub.hypertables;
CREATE VIEW timescaledb_information.continuous_aggregates AS
  SELECT view_schema, view_name, compression_enabled,
         mat_schema AS materialization_hypertable_schema, mat_name AS materialization_hypertable_name
    FROM stub.caggs;
CREATE VIEW timescaledb_information.jobs AS
  SELECT job_id, format('%s [%s]', proc_name, job_id) AS application_name, '_timescaledb_functions'::name AS proc_schema,
         proc_name, config, hypertable_schema, hypertable_name
    FROM stub.jobs;

-- The hypertable that carries a relation's jobs (itself, or a cagg's materialization hypertable).
CREATE FUNCTION stub.target(rel regclass, OUT s name, OUT t name, OUT compressed boolean) LANGUAGE plpgsql AS $$
BEGIN
  SELECT h.schema_name, h.table_name, h.compression_enabled INTO s, t, compressed
    FROM stub.hypertables h WHERE format('%I.%I', h.schema_name, h.table_name)::regclass = rel;
  IF FOUND THEN RETURN; END IF;
  SELECT c.mat_schema, c.mat_name, c.compression_enabled INTO s, t, compressed
    FROM stub.caggs c WHERE format('%I.%I', c.view_schema, c.view_name)::regclass = rel;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table "%" is not a hypertable or a continuous aggregate', rel;
  END IF;
END $$;

CREATE FUNCTION stub.add_policy(proc name, key text, rel regclass, after interval, if_not_exists boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  tgt record;
  old stub.jobs;
  id integer;
BEGIN
  SELECT * INTO tgt FROM stub.target(rel);
  IF proc = 'policy_compression' AND NOT tgt.compressed THEN
    RAISE EXCEPTION 'columnstore not enabled on "%"', rel USING ERRCODE = '0A000';
  END IF;
  SELECT * INTO old FROM stub.jobs WHERE proc_name = proc AND hypertable_schema = tgt.s AND hypertable_name = tgt.t;
  IF FOUND THEN
    IF NOT if_not_exists THEN
      RAISE EXCEPTION '% policy already exists for "%"', proc, rel USING ERRCODE = '42710';
    ELSIF (old.config ->> key)::interval = after THEN
      RAISE NOTICE '% policy already exists for "%", skipping', proc, rel;
    ELSE
      RAISE WARNING '% policy already exists for "%" with different arguments', proc, rel;
    END IF;
    RETURN -1;
  END IF;
  INSERT INTO stub.jobs (proc_name, hypertable_schema, hypertable_name, config)
    VALUES (proc, tgt.s, tgt.t, jsonb_build_object(key, after::text, 'hypertable_id', 1))
    RETURNING job_id INTO id;
  RETURN id;
END $$;

CREATE FUNCTION stub.remove_policy(proc name, rel regclass, if_exists boolean) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  tgt record;
BEGIN
  SELECT * INTO tgt FROM stub.target(rel);
  DELETE FROM stub.jobs WHERE proc_name = proc AND hypertable_schema = tgt.s AND hypertable_name = tgt.t;
  IF NOT FOUND THEN
    IF NOT if_exists THEN
      RAISE EXCEPTION '% policy not found for "%"', proc, rel USING ERRCODE = '42704';
    END IF;
    RAISE NOTICE '% policy not found for "%", skipping', proc, rel;
    RETURN false;
  END IF;
  RETURN true;
END $$;

CREATE FUNCTION public.add_retention_policy(
  relation regclass, drop_after interval, if_not_exists boolean DEFAULT false, schedule_interval interval DEFAULT NULL,
  initial_start timestamptz DEFAULT NULL, timezone text DEFAULT NULL, drop_created_before interval DEFAULT NULL
) RETURNS integer LANGUAGE sql AS $$ SELECT stub.add_policy('policy_retention', 'drop_after', relation, drop_after, if_not_exists) $$;

CREATE FUNCTION public.add_compression_policy(
  hypertable regclass, compress_after interval, if_not_exists boolean DEFAULT false, schedule_interval interval DEFAULT NULL,
  initial_start timestamptz DEFAULT NULL, timezone text DEFAULT NULL, compress_created_before interval DEFAULT NULL
) RETURNS integer LANGUAGE sql AS $$ SELECT stub.add_policy('policy_compression', 'compress_after', hypertable, compress_after, if_not_exists) $$;

CREATE FUNCTION public.remove_retention_policy(relation regclass, if_exists boolean DEFAULT false)
RETURNS void LANGUAGE sql AS $$ SELECT stub.remove_policy('policy_retention', relation, if_exists); $$;

CREATE FUNCTION public.remove_compression_policy(hypertable regclass, if_exists boolean DEFAULT false)
RETURNS boolean LANGUAGE sql AS $$ SELECT stub.remove_policy('policy_compression', hypertable, if_exists) $$;
