"""The L-BFGS variant of the fit (``fit.optimizer: lbfgs``), on the exact-feature world of
test_fitting: it must move a perturbed body towards the truth, count objective evaluations
against ``max_iters`` and keep the best evaluated iterate."""
from test_fitting import make_fitter, mpjpe, observed, perturbed, crop_camera, setup, truth  # noqa: F401


def test_lbfgs_moves_towards_the_truth_within_its_evaluations(setup):  # noqa: F811
    body = setup[1]
    gt = truth()
    init = perturbed(gt, 0)
    fitter = make_fitter(setup, max_iters=12, keypoint_weight=0.0, flip_hypothesis=False, turn_hypotheses=1,
                         optimizer="lbfgs")
    result = fitter.fit(observed(setup, gt), 0, crop_camera(), init)
    assert 0 < result.info.iterations <= 12  # objective evaluations, both stages together
    assert result.info.loss <= result.info.loss_init
    assert mpjpe(body, result.params, gt) < 0.9 * mpjpe(body, init, gt)
