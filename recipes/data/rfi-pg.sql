-- A sample `rfi` table for recipes/pg_to_search.yaml: 3,000 RFIs over three days from
-- 2025-09-05 (UTC), with padded and empty strings, missing RFI numbers (dropped by the
-- recipe's transform), NULL responses, numerics, arrays and JSON.
--   psql "$POSTGRES_URL" -f recipes/data/rfi-pg.sql
CREATE TABLE IF NOT EXISTS rfi (
    id           bigint PRIMARY KEY,
    project_id   text NOT NULL,
    rfi_number   int,
    title        text,
    question     text,
    created_at   timestamptz NOT NULL,
    responded_at timestamptz,
    status       text,
    amount       numeric(12, 2),
    tags         text[],
    meta         jsonb
);
INSERT INTO rfi
SELECT g,
       'P' || (100 + g % 25),
       CASE WHEN g % 50 = 0 THEN NULL ELSE g END,
       '  Rebar spacing at level ' || (g % 12) || '  ',
       CASE WHEN g % 7 = 0 THEN '' ELSE 'Please confirm the façade détail on grid ' || g END,
       timestamptz '2025-09-05 00:00+00' + g * interval '86 second',
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE timestamptz '2025-09-05 00:00+00' + g * interval '86 second'
                 + (1 + g % 72) * interval '1 hour' END,
       (ARRAY['open', 'closed', 'answered', 'void'])[1 + g % 4],
       round((g % 1000) * 12.5, 2),
       ARRAY['level-' || (g % 12), CASE WHEN g % 2 = 0 THEN 'structural' ELSE 'facade' END],
       jsonb_build_object('source', 'pg', 'discipline', (ARRAY['S', 'A', 'M'])[1 + g % 3],
                          'revision', g % 5)
FROM generate_series(1, 3000) AS g
ON CONFLICT (id) DO NOTHING;
