# Nix 2.8 silently dropped the dynamic attributes of the second set; current Nix keeps them.
{
  s1 = { a = 1; };
  s1 = { "${"b"}" = 2; };
  s2.a = 1;
  s2."${"b"}" = 2;
}
