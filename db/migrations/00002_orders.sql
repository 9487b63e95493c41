-- Version 00001 is River's own schema, applied by rivermigrate from Go (see internal/migrate).

-- +goose Up

-- Carriers an order may name. The service upserts the carriers it is configured for at start
-- and never deletes one; onfleet is always there. orders_validate refuses an INSERT naming any
-- other. There is deliberately no foreign key from orders: every INSERT would take FOR KEY SHARE
-- on the same carrier row, and at thousands of orders a second that one hot row costs ~15% of
-- insert throughput (measured with pgbench; see BENCHMARKS.md).
CREATE TABLE waybill.carriers (
    name       text PRIMARY KEY CONSTRAINT carriers_name_format CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO waybill.carriers (name) VALUES ('onfleet');

CREATE TABLE waybill.orders (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id   text NOT NULL CONSTRAINT orders_external_id_key UNIQUE
                  CONSTRAINT orders_external_id_format CHECK (external_id ~ '^\S.{0,198}\S$|^\S$'),
    carrier       text NOT NULL,
    kind          text NOT NULL DEFAULT 'delivery' CONSTRAINT orders_kind_check CHECK (kind IN ('delivery', 'pickup')),
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CONSTRAINT orders_status_check CHECK (status IN (
                      'pending', 'dispatched', 'assigned', 'in_transit', 'delivered', 'picked_up',
                      'failed_attempt', 'returned', 'cancelled', 'exception', 'rejected')),
    status_reason text,
    -- Event time of whatever set status; carrier events older than this never move it back.
    status_at     timestamptz,
    carrier_ref   text,
    tracking_url  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);

CREATE INDEX orders_carrier_ref_idx ON waybill.orders (carrier, carrier_ref) WHERE carrier_ref IS NOT NULL;

-- Problems with an order's payload, as "field: problem" strings; empty when it can be dispatched.
-- The contract is documented in README.md and db/order-payload.schema.json. It lives in SQL so
-- that a monolith writing plain INSERTs and the HTTP intake get the same answer.
-- +goose StatementBegin
CREATE FUNCTION waybill.order_payload_problems(payload jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    problems text[] := '{}';
    rfc3339  CONSTANT text := '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$';
    r jsonb;
    a jsonb;
    w jsonb;
    item jsonb;
    i int := 0;
    f text;
BEGIN
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RETURN ARRAY['payload: must be a JSON object'];
    END IF;

    r := payload->'recipient';
    IF r IS NULL OR jsonb_typeof(r) <> 'object' THEN
        problems := problems || 'payload.recipient: required object'::text;
    ELSE
        FOREACH f IN ARRAY ARRAY['name', 'phone'] LOOP
            IF jsonb_typeof(r->f) IS DISTINCT FROM 'string' OR btrim(r->>f) = '' THEN
                problems := problems || ('payload.recipient.' || f || ': required non-empty string');
            END IF;
        END LOOP;
        IF r ? 'email' AND (jsonb_typeof(r->'email') <> 'string' OR r->>'email' !~ '^[^@\s]+@[^@\s]+$') THEN
            problems := problems || 'payload.recipient.email: must be an email address'::text;
        END IF;
    END IF;

    a := payload->'address';
    IF a IS NULL OR jsonb_typeof(a) <> 'object' THEN
        problems := problems || 'payload.address: required object'::text;
    ELSE
        FOREACH f IN ARRAY ARRAY['line1', 'city', 'country'] LOOP
            IF jsonb_typeof(a->f) IS DISTINCT FROM 'string' OR btrim(a->>f) = '' THEN
                problems := problems || ('payload.address.' || f || ': required non-empty string');
            END IF;
        END LOOP;
        FOREACH f IN ARRAY ARRAY['line2', 'region', 'postal_code'] LOOP
            IF a ? f AND jsonb_typeof(a->f) NOT IN ('string', 'null') THEN
                problems := problems || ('payload.address.' || f || ': must be a string');
            END IF;
        END LOOP;
    END IF;

    IF payload ? 'notes' AND (jsonb_typeof(payload->'notes') NOT IN ('string', 'null') OR length(payload->>'notes') > 10000) THEN
        problems := problems || 'payload.notes: must be a string of at most 10000 characters'::text;
    END IF;

    w := payload->'window';
    IF w IS NOT NULL AND jsonb_typeof(w) <> 'null' THEN
        IF jsonb_typeof(w) <> 'object' THEN
            problems := problems || 'payload.window: must be an object'::text;
        ELSE
            FOREACH f IN ARRAY ARRAY['after', 'before'] LOOP
                IF w ? f AND jsonb_typeof(w->f) <> 'null' AND (jsonb_typeof(w->f) <> 'string' OR w->>f !~ rfc3339) THEN
                    problems := problems || ('payload.window.' || f || ': must be an RFC 3339 timestamp');
                END IF;
            END LOOP;
            IF (w->>'after') ~ rfc3339 AND (w->>'before') ~ rfc3339
               AND (w->>'after')::timestamptz >= (w->>'before')::timestamptz THEN
                problems := problems || 'payload.window: after must be earlier than before'::text;
            END IF;
        END IF;
    END IF;

    IF payload ? 'items' AND jsonb_typeof(payload->'items') <> 'null' THEN
        IF jsonb_typeof(payload->'items') <> 'array' THEN
            problems := problems || 'payload.items: must be an array'::text;
        ELSE
            FOR item IN SELECT value FROM jsonb_array_elements(payload->'items') LOOP
                IF jsonb_typeof(item) <> 'object'
                   OR jsonb_typeof(item->'sku') IS DISTINCT FROM 'string' OR btrim(item->>'sku') = ''
                   OR jsonb_typeof(item->'quantity') IS DISTINCT FROM 'number'
                   OR (item->>'quantity') !~ '^[1-9][0-9]{0,8}$' THEN
                    problems := problems || ('payload.items[' || i || ']: needs a non-empty sku and a positive integer quantity');
                END IF;
                i := i + 1;
            END LOOP;
        END IF;
    END IF;

    RETURN problems;
END
$$;
-- +goose StatementEnd

-- Rejects an order that could never be dispatched, naming every problem at once. DETAIL carries
-- the problems as a JSON array so the HTTP intake can return them field by field.
-- +goose StatementBegin
CREATE FUNCTION waybill.orders_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problems text[];
BEGIN
    problems := waybill.order_payload_problems(NEW.payload);
    IF NEW.kind IS NULL OR NEW.kind NOT IN ('delivery', 'pickup') THEN
        problems := problems || format('kind: must be delivery or pickup, not %L', NEW.kind);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM waybill.carriers WHERE name = NEW.carrier) THEN
        problems := problems || format('carrier: unknown carrier %L (known: %s)', NEW.carrier,
            (SELECT string_agg(name, ', ' ORDER BY name) FROM waybill.carriers));
    END IF;
    IF NEW.status <> 'pending' OR NEW.status_reason IS NOT NULL OR NEW.carrier_ref IS NOT NULL
       OR NEW.tracking_url IS NOT NULL OR NEW.dispatched_at IS NOT NULL OR NEW.status_at IS NOT NULL THEN
        problems := problems || 'status: status, status_reason, status_at, carrier_ref, tracking_url and dispatched_at are set by Waybill; leave them out'::text;
    END IF;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'waybill: order % rejected: %', coalesce(NEW.external_id, '(no external_id)'), array_to_string(problems, '; ')
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'orders_valid',
                  DETAIL = array_to_json(problems)::text,
                  HINT = 'The order payload contract is in Waybill''s README.';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER orders_validate BEFORE INSERT ON waybill.orders
    FOR EACH ROW EXECUTE FUNCTION waybill.orders_validate();

-- The transactional outbox: every inserted order gets its dispatch job in the same transaction.
-- One INSERT per statement through a transition table, so a multi-row INSERT costs one job
-- INSERT, and rows skipped by ON CONFLICT DO NOTHING get no job. No pg_notify: a notify per
-- insert halves insert throughput; the service polls the dispatch queue instead
-- (WAYBILL_DISPATCH_POLL). The job carries only the order's identity: copying the payload into
-- River's args (GIN-indexed) cost ~15-20% of insert throughput; the worker reads the order by
-- primary key instead.
-- SECURITY DEFINER so the monolith's role needs no privilege on River's tables.
-- +goose StatementBegin
CREATE FUNCTION waybill.orders_enqueue_dispatch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, waybill AS $$
BEGIN
    INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, priority, scheduled_at, tags)
    SELECT jsonb_build_object('order_id', n.id, 'external_id', n.external_id, 'carrier', n.carrier),
           'dispatch_order', 25, 'dispatch', 'available', 1, now(), ARRAY[n.carrier]::varchar(255)[]
    FROM new_orders n;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER orders_enqueue_dispatch AFTER INSERT ON waybill.orders
    REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION waybill.orders_enqueue_dispatch();

-- +goose Down
DROP TABLE waybill.orders;
DROP FUNCTION waybill.orders_enqueue_dispatch();
DROP FUNCTION waybill.orders_validate();
DROP FUNCTION waybill.order_payload_problems(jsonb);
DROP TABLE waybill.carriers;
