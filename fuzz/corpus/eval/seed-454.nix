builtins.match "([a-z]+)-([0-9]+)\\.([0-9]+)" "foo-12.34"
