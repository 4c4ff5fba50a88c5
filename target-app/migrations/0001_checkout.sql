-- The checkout schema: a small catalogue and the orders written by POST /api/checkout.
CREATE TABLE items (
    id          BIGINT PRIMARY KEY,
    name        TEXT   NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents > 0)
);

INSERT INTO items (id, name, price_cents) VALUES
    (1, 'Coffee beans, 1 kg', 2490),
    (2, 'Hand grinder', 5900),
    (3, 'Paper filters (100)', 399);

CREATE TABLE orders (
    id              UUID        PRIMARY KEY,
    idempotency_key TEXT        NOT NULL UNIQUE,
    item_id         BIGINT      NOT NULL REFERENCES items (id),
    quantity        INTEGER     NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    amount_cents    BIGINT      NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    charge_id       TEXT,
    replica         TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
