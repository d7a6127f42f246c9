"""The transaction APIs of the listener's table, at the versions served (what ApiVersions
tells): librdkafka uses AddPartitionsToTxn v0, AddOffsetsToTxn v0, EndTxn v0-v1 and
TxnOffsetCommit v0-v3; AddPartitionsToTxn v4+ (broker-to-broker verification) is not served."""

from __future__ import annotations

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import Api
from raftka.broker.kafka.txn import (
    ADD_OFFSETS_TO_TXN_KEY,
    ADD_PARTITIONS_TO_TXN_KEY,
    END_TXN_KEY,
    AddOffsetsToTxnHandler,
    AddPartitionsToTxnHandler,
    EndTxnHandler,
)
from raftka.broker.kafka.txn_admin import (
    DESCRIBE_PRODUCERS_KEY,
    DESCRIBE_TRANSACTIONS_KEY,
    LIST_TRANSACTIONS_KEY,
    DescribeProducersHandler,
    DescribeTransactionsHandler,
    ListTransactionsHandler,
)
from raftka.broker.kafka.txn_offsets import TXN_OFFSET_COMMIT_KEY, TxnOffsetCommitHandler


def transaction_apis(backend: KafkaBackend) -> list[Api]:
    return [
        Api(
            ADD_PARTITIONS_TO_TXN_KEY,
            "AddPartitionsToTxn",
            0,
            3,
            AddPartitionsToTxnHandler(backend),
        ),
        Api(ADD_OFFSETS_TO_TXN_KEY, "AddOffsetsToTxn", 0, 3, AddOffsetsToTxnHandler(backend)),
        Api(END_TXN_KEY, "EndTxn", 0, 5, EndTxnHandler(backend)),
        Api(TXN_OFFSET_COMMIT_KEY, "TxnOffsetCommit", 0, 3, TxnOffsetCommitHandler(backend)),
        Api(DESCRIBE_PRODUCERS_KEY, "DescribeProducers", 0, 0, DescribeProducersHandler(backend)),
        Api(
            DESCRIBE_TRANSACTIONS_KEY,
            "DescribeTransactions",
            0,
            0,
            DescribeTransactionsHandler(backend),
        ),
        Api(LIST_TRANSACTIONS_KEY, "ListTransactions", 0, 0, ListTransactionsHandler(backend)),
    ]
