# Lengths are in bytes.
map builtins.stringLength [ "héllo" "€" "😀" "日本語" "" ]
