"""Client quotas on the broker: produce and fetch byte rates and request time (Kafka's model).

``sampler.py`` measures a rate over sliding windows, ``lookup.py`` finds the quota that applies
to a (user, client id) by Kafka's precedence, ``manager.py`` ties them together and computes
throttle times. All of it is sans-I/O (time is passed in); ``broker/service.py`` does the
waiting.
"""
