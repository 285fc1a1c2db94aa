import ArgumentParser
import SCM
import SCMCommandLine

/// `scm-export sct-loss NET LOSS`: the sCT loss graph of a network.
struct SCTLoss: ExportCommand {
    static let configuration = CommandConfiguration(
        commandName: "sct-loss",
        abstract: "Write the sCT loss graph of a network (inputs x, t; output 0 F, optional output 1 logvar): inputs sct_x0, sct_z, sct_t, sct_r, output sct_loss.")

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @Option(parsing: .unconditional, help: "sigma_data of the loss (default: the model's scm.sigma_data, else 0.5).")
    var sigmaData: Float?

    @Option(help: ArgumentHelp("Segment boundaries of a multistep consistency model (times in (0, pi/2)).", valueName: "t1,t2,..."))
    var segments: String?

    func validate() throws {
        try CommandLineSupport.checkSigmaData(sigmaData)
    }

    func export() throws {
        let (model, _) = try files.load(resources)
        let sd = sigmaData ?? model.metadataValue(TrigFlowMetadata.Key.sigmaData).flatMap { Float($0) } ?? TrigFlowMetadata.defaultSigmaData
        let boundaries = try segments.map { try TrigFlowMetadata.parseTimes($0, source: "--segments") } ?? []
        let loss = try ConsistencyLoss.sct(network: model, options: .init(sigmaData: sd, segments: boundaries))
        try loss.verify()
        _ = try ModelFile.save(loss, to: files.output)
        print("\(files.output): sCT loss, sigma_data \(sd), \(loss.graph.nodes.count) nodes")
    }
}

/// `scm-export train-step LOSS STEP`: the training step of a loss graph.
struct TrainStep: ExportCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-step",
        abstract: "Write the training step of a loss graph (output 0 a scalar loss): the gradient of every parameter and a fused Adam update.")

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @Option(parsing: .unconditional, help: "Adam's global-norm gradient clipping (0: none).")
    var maxGradNorm: Float = 0

    @Option(parsing: .unconditional, help: "AdamW's decoupled weight decay.")
    var weightDecay: Float = 0

    @Option(parsing: .unconditional, help: "Decay of the weights' moving average (0: none).")
    var emaDecay: Float = 0

    func validate() throws {
        if !(maxGradNorm >= 0 && weightDecay >= 0 && emaDecay >= 0 && emaDecay < 1) {
            throw ValidationError("--max-grad-norm and --weight-decay must be >= 0 and --ema-decay in [0, 1)")
        }
    }

    func export() throws {
        let (model, _) = try files.load(resources)
        let adam = AdamOptions(weightDecay: weightDecay, maxGradNorm: maxGradNorm, emaDecay: emaDecay)
        let (step, params) = try TrainingStep.make(model, options: adam)
        try step.verify()
        _ = try ModelFile.save(step, to: files.output)
        print("\(files.output): training step of \(params.count) parameters, \(step.graph.nodes.count) nodes")
    }
}
