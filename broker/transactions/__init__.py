"""The transaction coordinator (KIP-98 with KIP-890's epoch bump): a sans-I/O state machine per
``__transaction_state`` partition this broker leads, its runtime, the marker sender, and the
TransactionService."""
