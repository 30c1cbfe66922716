"""Media stages: probe a source, analyse it once into planned clips, cut the clips into files."""
