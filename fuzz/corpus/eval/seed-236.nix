/kiln-corpus-nonexistent/../elsewhere/./doc
