DROP TRIGGER IF EXISTS orders_notify ON orders;
DROP FUNCTION IF EXISTS fenpay_order_notify();
