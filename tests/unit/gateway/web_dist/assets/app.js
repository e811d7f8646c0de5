document.title = "fake app";
