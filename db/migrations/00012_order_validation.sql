-- Every order cheaper (issue 13): a good order no longer pays for naming the problems of a bad one.
--
-- Before, a plpgsql row trigger computed the full list of an order's problems for every row, and
-- cost about as much as enqueueing its dispatch job. Now:
-- * The row trigger first asks a cheap check (waybill.order_payload_ok and the row's columns)
--   that is conservative: whatever it passes has no problem; what it does not pass gets the full
--   check, which names every problem exactly as before (and may still accept the row, e.g. a
--   delivery window on the 29th of a month).
-- * The carrier check needs a query: the statement trigger that enqueues the dispatch jobs
--   checks the statement's carriers in one anti-join instead of one query per row, and raises
--   the same error as the row trigger for an order naming an unknown carrier.
-- * order_payload_problems no longer fails the INSERT with a date/time error for a window that
--   looks like RFC 3339 but names no instant (month 13, February 30): it names the problem.

-- +goose Up

-- The instant an RFC 3339 timestamp names, or NULL when the text is not one. Only the slow path
-- calls it (its exception block is a subtransaction).
-- +goose StatementBegin
CREATE FUNCTION waybill.rfc3339_instant(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF t IS NULL OR t !~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$' THEN
        RETURN NULL;
    END IF;
    RETURN t::timestamptz;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR invalid_time_zone_displacement_value THEN
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.order_payload_problems(payload jsonb) RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    problems text[] := '{}';
    rfc3339  CONSTANT text := '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$';
    r jsonb;
    a jsonb;
    w jsonb;
    item jsonb;
    i int := 0;
    f text;
    after_at  timestamptz;
    before_at timestamptz;
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
            -- A string can look like RFC 3339 and name no instant (month 13, February 30): the
            -- cast would fail the INSERT with a date/time error instead of naming the problem.
            after_at := waybill.rfc3339_instant(w->>'after');
            before_at := waybill.rfc3339_instant(w->>'before');
            FOREACH f IN ARRAY ARRAY['after', 'before'] LOOP
                IF (w->>f) ~ rfc3339 AND waybill.rfc3339_instant(w->>f) IS NULL THEN
                    problems := problems || ('payload.window.' || f || ': must be an RFC 3339 timestamp');
                END IF;
            END LOOP;
            IF after_at >= before_at THEN
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

-- True only for a payload order_payload_problems would find nothing wrong with; false for every
-- bad one and for some good ones (those get the full check). It is built for the cost of a
-- one-row INSERT, where Postgres prepares the expressions anew for each statement: nearly all
-- of it is one jsonpath predicate (one node to prepare, interpreted as it runs), so a good
-- order pays a few microseconds. It is conservative where exactness would cost: a non-blank
-- string must not start with a space, a delivery window's timestamps must be unmistakable
-- (year 1000-9999, day 01-28, offset at most 14 h, so that the comparison's casts can never
-- fail), an item quantity must not be written with a fraction (2.0: jsonb keeps its text).
-- Everything else takes the full check, which names every problem as it always did.
-- +goose StatementBegin
CREATE FUNCTION waybill.order_payload_ok(p jsonb) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT coalesce(
    p @@ '$.type() == "object"
          && $.recipient.type() == "object"
          && $.recipient.name.type() == "string" && $.recipient.name != "" && !($.recipient.name starts with " ")
          && $.recipient.phone.type() == "string" && $.recipient.phone != "" && !($.recipient.phone starts with " ")
          && (!exists($.recipient.email)
              || ($.recipient.email.type() == "string" && $.recipient.email like_regex "^[^@\\s]+@[^@\\s]+$"))
          && $.address.type() == "object"
          && $.address.line1.type() == "string" && $.address.line1 != "" && !($.address.line1 starts with " ")
          && $.address.city.type() == "string" && $.address.city != "" && !($.address.city starts with " ")
          && $.address.country.type() == "string" && $.address.country != "" && !($.address.country starts with " ")
          && (!exists($.address.line2) || $.address.line2.type() == "string" || $.address.line2.type() == "null")
          && (!exists($.address.region) || $.address.region.type() == "string" || $.address.region.type() == "null")
          && (!exists($.address.postal_code) || $.address.postal_code.type() == "string" || $.address.postal_code.type() == "null")
          && (!exists($.notes) || $.notes.type() == "string" || $.notes.type() == "null")
          && (!exists($.window) || $.window.type() == "null"
              || ($.window.type() == "object"
                  && (!exists($.window.after) || $.window.after.type() == "null"
                      || $.window.after like_regex "^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")
                  && (!exists($.window.before) || $.window.before.type() == "null"
                      || $.window.before like_regex "^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")))
          && (!exists($.items) || $.items.type() == "null"
              || ($.items.type() == "array"
                  && !exists($.items[*] ? (@.type() != "object" || !exists(@.sku) || @.sku.type() != "string" || @.sku == ""
                                           || @.sku starts with " " || !exists(@.quantity) || @.quantity.type() != "number"
                                           || @.quantity < 1 || @.quantity > 999999999))))'
    AND coalesce(length(p->>'notes'), 0) <= 10000
    AND coalesce((p->'items')::text !~ '"quantity": -?[0-9]*[.eE]', true)
    -- The casts run only once the jsonpath has vouched for both strings (CASE keeps the order).
    AND CASE WHEN p->'window'->>'after' IS NULL OR p->'window'->>'before' IS NULL THEN true
             ELSE (p->'window'->>'after')::timestamptz < (p->'window'->>'before')::timestamptz END,
    false)
$$;
-- +goose StatementEnd

-- Every problem of an order, raised as one error (the checks orders_validate always made); a
-- row without any returns.
-- +goose StatementBegin
CREATE FUNCTION waybill.orders_check(o waybill.orders) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    problems text[];
BEGIN
    problems := waybill.order_payload_problems(o.payload);
    IF o.kind IS NULL OR o.kind NOT IN ('delivery', 'pickup') THEN
        problems := problems || format('kind: must be delivery or pickup, not %L', o.kind);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM waybill.carriers WHERE name = o.carrier) THEN
        problems := problems || format('carrier: unknown carrier %L (known: %s)', o.carrier,
            (SELECT string_agg(name, ', ' ORDER BY name) FROM waybill.carriers));
    END IF;
    IF o.status <> 'pending' OR o.status_reason IS NOT NULL OR o.carrier_ref IS NOT NULL
       OR o.tracking_url IS NOT NULL OR o.dispatched_at IS NOT NULL OR o.status_at IS NOT NULL THEN
        problems := problems || 'status: status, status_reason, status_at, carrier_ref, tracking_url and dispatched_at are set by Waybill; leave them out'::text;
    END IF;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'waybill: order % rejected: %', coalesce(o.external_id, '(no external_id)'), array_to_string(problems, '; ')
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'orders_valid',
                  DETAIL = array_to_json(problems)::text,
                  HINT = 'The order payload contract is in Waybill''s README.';
    END IF;
END
$$;
-- +goose StatementEnd

-- The row trigger: a good order pays for a few column checks and one jsonpath predicate; any
-- other gets the full check. (Measured, BENCHMARKS.md: a WHEN clause on the trigger costs more
-- than this, since Postgres prepares a WHEN expression for every statement, while plpgsql keeps
-- its expressions prepared across a session's statements.)
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.orders_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IN ('delivery', 'pickup') AND NEW.status = 'pending' AND NEW.status_reason IS NULL
       AND NEW.carrier_ref IS NULL AND NEW.tracking_url IS NULL AND NEW.dispatched_at IS NULL
       AND NEW.status_at IS NULL AND waybill.order_payload_ok(NEW.payload) THEN
        RETURN NEW;
    END IF;
    PERFORM waybill.orders_check(NEW);
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- The outbox, as before, plus the carrier check: one anti-join per statement; an order naming an
-- unknown carrier gets the row trigger's whole check, so its error names every problem as it
-- always did.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.orders_enqueue_dispatch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, waybill AS $$
DECLARE
    bad waybill.orders;
BEGIN
    SELECT n.* INTO bad FROM new_orders n
    WHERE NOT EXISTS (SELECT 1 FROM waybill.carriers c WHERE c.name = n.carrier)
    LIMIT 1;
    IF FOUND THEN
        PERFORM waybill.orders_check(bad);
    END IF;
    INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, priority, scheduled_at, tags)
    SELECT jsonb_build_object('order_id', n.id, 'external_id', n.external_id, 'carrier', n.carrier),
           'dispatch_order', 25, 'dispatch', 'available', 1, now(), ARRAY[n.carrier]::varchar(255)[]
    FROM new_orders n;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.orders_enqueue_dispatch() RETURNS trigger
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
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.orders_validate() RETURNS trigger
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
DROP FUNCTION waybill.orders_check(waybill.orders);
DROP FUNCTION waybill.order_payload_ok(jsonb);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.order_payload_problems(payload jsonb) RETURNS text[]
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
DROP FUNCTION waybill.rfc3339_instant(text);
