"""Git and files: repositories, the serialised writer, paths, encodings and history. No HTTP
here."""
