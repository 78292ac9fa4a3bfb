[ ("abc" == "abc") ("abc" != "abd") ("" == "") ]
