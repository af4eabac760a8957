"""fpc: full packet capture, sessions (SPI records) and PCAP retrieval."""

__all__: list[str] = []
__version__ = "0.1.0"
