import ArgumentParser
import SCM
import SCMCommandLine

/// `scm-export attach IN OUT`: a network exported elsewhere, given the TrigFlow contract.
struct Attach: ExportCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach the TrigFlow contract to a network exported elsewhere (PyTorch, ...): scm-run samples OUT.",
        discussion: """
            OUT is IN with the scm.* metadata and, for a network that reads x / sigma_d, a division of x by sigma_d \
            in front (the contract's x is in data units), checked against the contract.
            """)

    @OptionGroup var files: ExportFiles

    @OptionGroup(title: "Resource limits")
    var resources: ResourceOptions

    @Option(help: "What output 0 is, velocity (F) or consistency (f = cos t x - sigma_d sin t F).")
    var parameterization: TrigFlowMetadata.Parameterization

    @Option(parsing: .unconditional, help: "The data's standard deviation sigma_d (scm.sigma_data, e.g. 0.5).")
    var sigmaData: Float

    @Option(help: "'sigma' if the network reads x / sigma_d (inserts the division; the default for velocity), 'none' if it reads x in data units (the default for consistency).")
    var inputScale: String?

    @Option(help: "The data interval mapped to pixels 0..255, 'low,high' (scm.data_range, for PNG output).")
    var dataRange: String?

    @Option(help: "Free text for scm.dataset.")
    var dataset: String?

    @Option(parsing: .unconditional, help: "scm.t_max (default atan(80 / sigma_d)).")
    var tMax: Float?

    @Option(help: ArgumentHelp("A schedule to store as scm.schedule.<count>: comma-separated decreasing times, the first t_max (repeatable).", valueName: "t_max,t1,..."))
    var schedule: [String] = []

    @Flag(help: "Replace the contract the model already carries (t_max, data range, dataset and schedules not given are kept; x is taken as in data units unless --input-scale sigma).")
    var replaceContract = false

    func validate() throws {
        try CommandLineSupport.checkSigmaData(sigmaData)
        try CommandLineSupport.checkTMax(tMax)
        try CommandLineSupport.checkSchedules(schedule, flag: "--schedule")
        if let i = inputScale, i != "sigma" && i != "none" { throw ValidationError("--input-scale must be sigma or none, is '\(i)'") }
        if let r = dataRange { _ = try CommandLineSupport.parseRange(r, flag: "--data-range") }
    }

    func export() throws {
        let model = try ModelFile.load(path: files.input, limits: resources.limits)
        let tm = tMax ?? TrigFlowMetadata.defaultTMax(sigmaData: sigmaData)
        let options = ContractAttachment.Options(
            parameterization: parameterization, sigmaData: sigmaData, tMax: tm,
            schedules: try schedule.map { try TrigFlowMetadata.parseSchedule($0, tMax: tm, source: "--schedule") },
            dataRange: try dataRange.map { try CommandLineSupport.parseRange($0, flag: "--data-range") },
            scaledInput: inputScale.map { $0 == "sigma" }, dataset: dataset, replaceContract: replaceContract)
        let (attached, report) = try attach(model, options)
        try files.save(attached)
        let stored = report.schedules.keys.sorted().map { "scm.schedule.\($0)" }
        print("\(files.output): \(options.parameterization.rawValue) network, sigma_data \(options.sigmaData), t_max \(report.tMax), sample shape \(report.sampleShape.map(String.init).joined(separator: ","))"
              + (report.scaledInput ? ", x / sigma_data inserted before the network" : "")
              + (stored.isEmpty ? "" : ", \(stored.joined(separator: ", "))"))
    }

    /// `ContractAttachment.attach`, a contract already there named as IN's, with the flag that replaces it.
    func attach(_ model: Model, _ options: ContractAttachment.Options) throws -> (Model, ContractAttachment.Report) {
        do { return try ContractAttachment.attach(model, options) } catch {
            var e = error
            if e.location == ContractAttachment.existingContract {
                e.location = files.input
                e.message += " (--replace-contract)"
            }
            throw e
        }
    }
}
