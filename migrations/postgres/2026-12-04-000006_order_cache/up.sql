-- Replicas keep order rows in memory for order-status (backend/src/db/cache.rs). A change
-- to an order row is announced on commit on fenpay_orders (payload: the order number) so
-- every replica drops its copy. The jobs' bookkeeping columns (leases, query stamps)
-- change often and are never served from the cache: changes to them alone are quiet.
CREATE FUNCTION fenpay_order_notify() RETURNS trigger AS $$
DECLARE
    quiet CONSTANT text[] := ARRAY['lease_until', 'last_query_at', 'query_attempts',
                                   'paid_check_failures', 'paid_check_at'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('fenpay_orders', OLD.order_no);
        RETURN OLD;
    END IF;
    IF (to_jsonb(OLD) - quiet) IS DISTINCT FROM (to_jsonb(NEW) - quiet) THEN
        PERFORM pg_notify('fenpay_orders', NEW.order_no);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER orders_notify AFTER UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION fenpay_order_notify();
