@_exported import SCMGraph
