"""Stage 5 of the pipeline: where SPI records and the PCAP file registry live.

`open_store` picks the backend from the configuration: Elasticsearch when a URL
is set, else the embedded SQLite database in the data directory.
"""
