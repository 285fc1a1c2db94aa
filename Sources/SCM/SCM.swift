@_exported import SCMGraph
@_exported import SCMRuntime
@_exported import SCMOptimize
@_exported import SCMTrigFlow
@_exported import SCMTrain
