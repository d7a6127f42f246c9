"""Which security the Kafka listener takes, and the combinations refused at start."""

from __future__ import annotations

import pytest

from raftka.broker.config import BrokerConfig
from raftka.broker.kafka.listener import check_kafka_security
from raftka.broker.kafka.security_config import kafka_security_protocol
from raftka.common.errors import ConfigFileError
from raftka.common.security.settings import SecuritySettings

TLS = SecuritySettings(tls_cert_file="node.crt", tls_key_file="node.key", tls_ca_file="ca.crt")


def test_the_default_is_sasl_ssl_with_tls_and_plaintext_without() -> None:
    assert kafka_security_protocol("", TLS) == "SASL_SSL"
    assert kafka_security_protocol("", SecuritySettings()) == "PLAINTEXT"
    assert kafka_security_protocol("ssl", TLS) == "SSL"
    # Without TLS the authorizer alone is fine: callers are User:ANONYMOUS, as on gRPC.
    assert kafka_security_protocol("", SecuritySettings(authorizer_enable=True)) == "PLAINTEXT"


def test_sasl_plaintext_is_refused_at_config_load() -> None:
    with pytest.raises(ConfigFileError, match="SASL_PLAINTEXT is refused"):
        BrokerConfig(kafka_listen="127.0.0.1:9093", kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ConfigFileError, match="not one of"):
        BrokerConfig(kafka_security_protocol="TLS")
    with pytest.raises(ConfigFileError, match="GSSAPI not supported"):
        BrokerConfig(kafka_sasl_mechanisms="SCRAM-SHA-512,GSSAPI")


def test_plaintext_beside_secured_listeners_is_refused() -> None:
    with pytest.raises(ConfigFileError, match="without TLS or authentication"):
        kafka_security_protocol("PLAINTEXT", TLS)
    with pytest.raises(ConfigFileError, match="without TLS or authentication"):
        kafka_security_protocol("", SecuritySettings(require_authentication=True))
    with pytest.raises(ConfigFileError, match="needs the node's TLS certificate"):
        kafka_security_protocol("SASL_SSL", SecuritySettings())


def test_only_a_configured_listener_is_checked() -> None:
    check_kafka_security(BrokerConfig(), SecuritySettings(require_authentication=True))
    with pytest.raises(ConfigFileError):
        check_kafka_security(
            BrokerConfig(kafka_listen="127.0.0.1:9093"),
            SecuritySettings(require_authentication=True),
        )
