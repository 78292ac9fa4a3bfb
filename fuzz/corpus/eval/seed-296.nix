# A later `a.c = …` joins an earlier `a = rec { … }` and sees its attributes.
{
  a = rec {
    b = c + 1;
    d = 2;
  };
  a.c = d + 3;
}.a.b
