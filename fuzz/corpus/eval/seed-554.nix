# A string that is not UTF-8, printed in every mode.
{ binary = builtins.readFile ../byte-strings/fixtures/binary.dat; half = builtins.substring 0 1 "é"; }
