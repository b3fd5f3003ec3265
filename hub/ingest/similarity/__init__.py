"""Claims that travel: the same claim found when it is edited, re-scripted or retold in another of
the region's languages (docs/claims.md). Pure modules: text (lemmas and features of one claim),
names (gazetteer and concepts), signature (MinHash bands, scores, reasons)."""
