"""Ingest: one pipeline (decode, validate, stamp with consent, store) for every transport.

pipeline.py is pure (messages in, rows out); store.py is the database edge; mqtt.py and hub/api/ingest.py are
the transports. `python -m hub.ingest` runs the MQTT subscribers on their own (see worker.py).
"""
