builtins.getEnv "KILN_CORPUS_UNSET_VAR"
