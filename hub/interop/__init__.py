"""The CERTs' own formats: STIX 2.1 and TAXII 2.1 (OpenCTI and any TAXII client), MISP feeds and
MISP events. Pure mappings live here; the HTTP handlers live in hub/api."""
