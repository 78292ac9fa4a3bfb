# Parts of a character cut apart come together again, by `+`, interpolation or concatenation.
let
  word = "naïve €";
  at = n: builtins.substring n 1 word;
  bytes = builtins.genList at (builtins.stringLength word);
  head = builtins.substring 0 3 word;
  tail = builtins.substring 3 100 word;
in
{
  plus = head + tail;
  interpolated = "${head}${tail}";
  joined = builtins.concatStringsSep "" bytes;
  equal = builtins.concatStringsSep "" bytes == word;
  partEqual = at 2 == builtins.substring 0 1 "ï";
}
