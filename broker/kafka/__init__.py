"""The Kafka wire protocol listener: Kafka's own clients (librdkafka, kafka-python, kcat, ...)
against Raftka's partitions, metadata and controllers, with nothing re-implemented.

framing.py reads size-prefixed frames under limits and encodes responses; connection.py serves
one socket (pipelined, bounded in flight); dispatch.py maps API keys and versions to handlers
and answers ApiVersions; one module per API group (metadata, produce, fetch, topics) turns
requests into calls on the broker's lower layers (backend.py) and results into Kafka's types.
Message types and codecs are kio's, generated from Kafka's JSON schemas. Security:
security_config.py (PLAINTEXT / SSL / SASL_SSL), security.py (TLS and each connection's
principal), sasl.py (SaslHandshake / SaslAuthenticate before anything else), acls.py (the ACL
and SCRAM-credential APIs); connection.py binds the caller for every request.
"""
