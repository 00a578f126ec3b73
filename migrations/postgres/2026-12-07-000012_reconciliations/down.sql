DROP TABLE reconciliation_items;
DROP TABLE reconciliations;
