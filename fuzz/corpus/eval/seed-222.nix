# Length and hash of a binary file's contents count its bytes, not characters.
let
  contents = builtins.readFile ./fixtures/binary.dat;
in
{
  length = builtins.stringLength contents;
  sha256 = builtins.hashString "sha256" contents;
  sameAsFile = builtins.hashString "sha256" contents == builtins.hashFile "sha256" ./fixtures/binary.dat;
}
