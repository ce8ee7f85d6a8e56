"""osum_echat: a clean, fast research framework for the OSUM-EChat empathetic spoken chatbot."""

__version__ = "0.1.0"
