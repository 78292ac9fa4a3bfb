# `layer`: a directory of given files, built without any root filesystem or host tool.
#
# How: the files are written, at evaluation time, into a tar archive (`builtins.toFile`), which
# kiln's `builtin:unpack` unpacks in-process. Nix strings cannot hold NUL bytes, which ordinary
# tar headers are full of, so the archive is written in a NUL-free dialect of the old (v7)
# format: the 100-byte name field holds the path padded with `/` (empty path components are
# ignored by kiln's unpack, so `etc/os-release////…` is `etc/os-release`), numbers are octal
# ended by a space, unused header bytes are spaces, file data is padded to 512 bytes with
# newlines, and there are no end-of-archive blocks (the archive simply ends). Hence paths are
# printable ASCII of at most 99 bytes, and contents are text.
kiln:
let
  inherit (builtins)
    attrNames concatStringsSep genList stringLength substring foldl' filter split
    isString listToAttrs length elemAt concatLists;

  repeat = n: char: concatStringsSep "" (genList (_: char) n);

  octalDigits = n: if n < 8 then toString n else octalDigits (n / 8) + toString (n - (n / 8) * 8);
  # A `width`-byte octal field: zero-padded digits, then a space.
  octalField = width: n:
    let digits = octalDigits n;
    in repeat (width - 1 - stringLength digits) "0" + digits + " ";

  # Byte values of printable ASCII, the only characters a header holds.
  printable = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
  byteValue = listToAttrs (genList (i: { name = substring i 1 printable; value = 32 + i; })
    (stringLength printable));
  byteSum = text: foldl' (sum: char: sum + byteValue.${char} or (throw "kiln.layer: `${text}` is not printable ASCII")) 0
    (genList (i: substring i 1 text) (stringLength text));

  # The name field: the path, then `/` up to 100 bytes.
  nameField = path:
    if stringLength path > 99 then
      throw "kiln.layer: the path `${path}` is longer than 99 bytes"
    else
      path + repeat (100 - stringLength path) "/";
  headerTail = repeat 100 " " + repeat 255 " "; # linkname and the unused rest of the block

  # One 512-byte header: type flag, path, mode, data size.
  header = type: path: mode: size:
    let
      before = nameField path + octalField 8 mode + octalField 8 0 + octalField 8 0
        + octalField 12 size + octalField 12 1;
      after = type + headerTail;
      checksum = byteSum before + 8 * 32 + byteSum after;
    in
    before + octalField 7 checksum + " " + after;

  padding = size: repeat (if size - (size / 512) * 512 == 0 then 0 else 512 - (size - (size / 512) * 512)) "\n";

  entry = type: mode: path: data:
    header type path mode (stringLength data) + data + padding (stringLength data);

  # The parent directories of a relative path (`a/b/c` -> [ "a" "a/b" ]).
  parents = path:
    let
      parts = filter isString (split "/" path);
      count = length parts;
    in
    genList (i: concatStringsSep "/" (genList (j: elemAt parts j) (i + 1))) (count - 1);
in
{
  # layer { name, files }
  #
  # A directory holding `files`, an attribute set from relative path to contents: a string
  # (mode 0644) or `{ text; executable ? false; }` (0755 when executable). Parent directories
  # are created (0755). Built by `builtin:unpack` alone, so it needs no root filesystem; use it
  # as a top `rootfs` layer or as an input. Contents are written with `builtins.toFile`, so they
  # may name source paths but not derivation outputs.
  layer = { name, files, system ? kiln.system }:
    let
      paths = attrNames files;
      directories = attrNames (listToAttrs (map (d: { name = d; value = null; })
        (concatLists (map parents paths))));
      fileEntry = path:
        let
          spec = files.${path};
          text = if isString spec then spec else spec.text;
          executable = if isString spec then false else spec.executable or false;
        in
        entry "0" (if executable then 493 else 420) path text;
      archive = concatStringsSep "" (map (d: entry "5" 493 d "") directories ++ map fileEntry paths);
    in
    kiln.unpack {
      inherit name system;
      src = builtins.toFile "${name}.tar" archive;
    };
}
