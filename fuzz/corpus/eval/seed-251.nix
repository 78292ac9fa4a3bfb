map dirOf [ "/a/b/c" "/a/b/" "file" "/" "a/b" "/a" ]
