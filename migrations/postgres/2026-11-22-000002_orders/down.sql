DROP TABLE payment_records;
DROP TABLE orders;
