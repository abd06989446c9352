"""How the science archive lies in HBase: table layout and cell encoding, without a client."""
