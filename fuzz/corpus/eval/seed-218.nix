# A file that is not UTF-8 is read as the bytes it holds (printed, and in `--json`, as they are).
builtins.readFile ./fixtures/binary.dat
