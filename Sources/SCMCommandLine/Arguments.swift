import ArgumentParser
import SCM

// The library's enums as flag values: the parser checks them and lists the choices in --help
// and in its message for a bad value (exit 64), so no tool spells "must be X or Y" itself.
extension Precision: ExpressibleByArgument {}
extension Sampler.Solver: ExpressibleByArgument {}
extension TrigFlowMetadata.Parameterization: ExpressibleByArgument, CaseIterable {
    public static var allCases: [Self] { [.consistency, .velocity] }
}
extension TrainConfig.OptimizerKind: ExpressibleByArgument, CaseIterable {
    public static var allCases: [Self] { [.adam, .radam] }
}
extension MidTraining.Distance: ExpressibleByArgument {}
