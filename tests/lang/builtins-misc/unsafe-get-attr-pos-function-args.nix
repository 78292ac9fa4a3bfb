let
  f = { foo, bar ? 1 }: foo;
  pos = name: builtins.unsafeGetAttrPos name (builtins.functionArgs f);
in
[ (pos "foo") (pos "bar") (pos "baz") ]
