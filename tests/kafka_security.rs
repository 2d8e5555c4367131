//! Secured clusters: the `[kafka.properties]` of a SASL_SSL deployment pass
//! through to librdkafka, and librdkafka is built with what they need
//! (OpenSSL for SSL and SCRAM). No broker is contacted: client creation is
//! where librdkafka rejects a protocol or mechanism it was built without.

use cxpulse::config::Config;
use cxpulse::pipeline::{consumer_config, producer_config};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;

fn secured(mechanism: &str) -> Config {
    Config::from_toml(&format!(
        r#"[kafka]
brokers = "kafka.example.invalid:9093"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "{mechanism}"
"sasl.username" = "cxpulse"
"sasl.password" = "secret"
"ssl.endpoint.identification.algorithm" = "https"
"#
    ))
    .expect("valid config")
}

#[test]
fn sasl_ssl_clients_can_be_created() {
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let cfg = secured(mechanism);
        let consumer: Result<BaseConsumer, _> = consumer_config(&cfg, &cfg.kafka.brokers).create();
        assert!(
            consumer.is_ok(),
            "{mechanism} consumer: {:?}",
            consumer.err()
        );
        let producer: Result<BaseProducer, _> = producer_config(&cfg, &cfg.kafka.brokers).create();
        assert!(
            producer.is_ok(),
            "{mechanism} producer: {:?}",
            producer.err()
        );
    }
}

#[test]
fn an_unknown_librdkafka_property_is_rejected() {
    // The pass-through does not silently accept typos.
    let cfg = Config::from_toml(
        r#"[kafka]
brokers = "kafka.example.invalid:9093"
[kafka.properties]
"security.protcol" = "SASL_SSL"
"#,
    )
    .expect("valid config (librdkafka checks its own properties)");
    let consumer: Result<BaseConsumer, _> = consumer_config(&cfg, &cfg.kafka.brokers).create();
    let err = consumer.err().expect("librdkafka rejects the typo");
    assert!(err.to_string().contains("security.protcol"), "{err}");
}
