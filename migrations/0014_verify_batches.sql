-- einvoice.verify_batch: batches are also verification batches; the kind of the batch command
-- says which (its routing key), so batch.completed counts the right outcomes.
ALTER TABLE batches ADD COLUMN kind text NOT NULL DEFAULT 'irn.generate_batch';
