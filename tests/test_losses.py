from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer

from st_search_r3 import SearchR3
from st_search_r3.training.losses import SearchR3Loss


@pytest.fixture
def model(tiny_llm) -> SentenceTransformer:
    return SentenceTransformer(modules=[SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192)])


def batch(model, texts, reasoning=True):
    module = model[0]
    anchors = [(q, "a short thought") for q in texts["queries"][:4]] if reasoning else texts["queries"][:4]
    return [
        module.preprocess(anchors, task="query"),
        module.preprocess(texts["documents"][:4], task="document"),
        module.preprocess(texts["documents"][2:6], task="document"),
    ]


def total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """What sentence-transformers' trainer optimises: the sum of the loss's weighted terms."""
    return sum(terms.values())


def only(model, term: str, **kwargs) -> SearchR3Loss:
    weights = {f"{name}_weight": 0.0 for name in ("infonce", "triplet", "lm", "kl", "format", "distill")}
    weights[f"{term}_weight"] = 1.0
    return SearchR3Loss(model, **{**weights, **kwargs})


def test_infonce_and_triplet_on_a_hand_checkable_case(model):
    loss = SearchR3Loss(model, temperature=0.5, triplet_margin=0.2, kl_weight=0)
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    negatives = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    terms = loss.contrastive([anchors, positives, negatives])

    # Anchor 1 scores (p1, p2, n1, n2) = (1, 0, 0.6, 0.8); anchor 2 = (0, 1, 0.8, 0.6); / 0.5.
    def row(target, others):  # -log softmax of the target among all candidates
        return -target / 0.5 + math.log(sum(math.exp(s / 0.5) for s in [target, *others]))

    expected_infonce = (row(1.0, [0.0, 0.6, 0.8]) + row(1.0, [0.0, 0.8, 0.6])) / 2
    assert terms["infonce"].item() == pytest.approx(expected_infonce, rel=1e-6)
    # Triplet: each anchor scores its negative 0.6 and its positive 1, so max(0, 0.6 - 1 + 0.2) = 0...
    assert terms["triplet"].item() == pytest.approx(0.0)
    # ...and with margin 0.5 both triplets are active: 0.6 - 1 + 0.5 = 0.1 each.
    loss.triplet_margin = 0.5
    triplet = loss.contrastive([anchors, positives, negatives])["triplet"]
    assert triplet.item() == pytest.approx(0.1, rel=1e-6)
    triplet.backward()
    # d/da_i of mean_i(a_i.n_i - a_i.p_i) = (n_i - p_i) / 2
    torch.testing.assert_close(anchors.grad, (negatives - positives) / 2)


def test_infonce_gradient_matches_finite_differences(model):
    loss = SearchR3Loss(model, kl_weight=0)
    embeddings = [F.normalize(torch.randn(3, 5, dtype=torch.float64), dim=-1).requires_grad_() for _ in range(3)]
    assert torch.autograd.gradcheck(lambda *e: loss.contrastive(list(e))["infonce"], embeddings)


def full_logits(llm, column) -> torch.Tensor:
    """Next-token logits of a left-padded column from one plain forward pass (no shared prefix)."""
    return llm(
        input_ids=column["input_ids"],
        attention_mask=column["attention_mask"],
        position_ids=(column["attention_mask"].cumsum(-1) - 1).clamp(min=0),
    ).logits


def test_lm_term_is_the_mean_cross_entropy_of_the_answer(model, texts):
    features = batch(model, texts)
    loss = only(model, "lm")
    value = total(loss(features, None))
    llm = model[0].auto_model
    per_sequence = []
    with torch.no_grad():
        for column in features:
            logits = full_logits(llm, column)
            for row in range(len(column["input_ids"])):
                mask = column["answer_mask"][row, 1:].bool()
                targets = column["input_ids"][row, 1:][mask]
                per_sequence.append(F.cross_entropy(logits[row, :-1][mask], targets).item())
    assert value.item() == pytest.approx(sum(per_sequence) / len(per_sequence), rel=1e-4)


def test_format_term_is_the_cross_entropy_of_the_embed_token_where_the_answer_ends(model, texts):
    features = batch(model, texts)
    value = total(only(model, "format")(features, None))
    llm, embed = model[0].auto_model, model[0].embed_token_id
    losses = []
    with torch.no_grad():
        for column in features:
            logits = full_logits(llm, column)
            # Every sequence ends with the token: predicted from the position before the last.
            assert (column["input_ids"][:, -1] == embed).all()
            targets = torch.full((len(logits),), embed)
            losses += F.cross_entropy(logits[:, -2], targets, reduction="none").tolist()
    assert value.item() == pytest.approx(sum(losses) / len(losses), rel=1e-4)


def test_kl_is_zero_against_itself_and_positive_after_an_update(model, texts):
    features = batch(model, texts)
    loss = only(model, "kl")
    assert total(loss(features, None)).item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for parameter in model[0].auto_model.model.layers[0].mlp.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    value = total(loss(features, None))
    assert value.item() > 1e-4
    value.backward()
    assert model[0].auto_model.model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0


def test_kl_uses_disabled_adapters_as_the_base(model, texts):
    from peft import LoraConfig, get_peft_model

    module = model[0]
    module.auto_model = get_peft_model(module.auto_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    loss = only(model, "kl")
    assert loss.reference is None, "no frozen copy when adapters can be switched off"
    features = batch(model, texts)
    assert total(loss(features, None)).item() == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at zero
    with torch.no_grad():
        for name, parameter in module.auto_model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.1)
    assert total(loss(features, None)).item() > 1e-4


def test_zero_weight_terms_cost_nothing(model, texts, monkeypatch):
    loss = SearchR3Loss(model, lm_weight=0, kl_weight=0)
    assert loss.reference is None
    calls = []
    head = model[0].auto_model.get_output_embeddings()
    monkeypatch.setattr(head, "forward", lambda *a, **k: calls.append(1))
    loss(batch(model, texts), None)
    assert calls == []


def test_loss_needs_an_anchor_and_a_positive(model, texts):
    with pytest.raises(ValueError, match="columns"):
        SearchR3Loss(model)(batch(model, texts)[:1], None)


def test_fused_anchors_are_trained_as_inference_embeds_them(tiny_llm, texts):
    module = SearchR3(tiny_llm, max_reasoning_tokens=8, max_seq_length=192, fuse_direct_embedding=True)
    model = SentenceTransformer(modules=[module])
    features = batch(model, texts)
    assert "direct_ids" in features[0]
    loss = SearchR3Loss(model, lm_weight=0, kl_weight=0)
    trained, _, _ = loss.encode(features[0])
    with torch.inference_mode():
        module.matmul_precision = "float32"
        inferred = model.encode_query([(q, "a short thought") for q in texts["queries"][:4]], convert_to_tensor=True)
    torch.testing.assert_close(trained.detach(), inferred, rtol=1e-4, atol=1e-5)
    total(loss(features, None)).backward()
    row = module.auto_model.get_input_embeddings().weight
    assert row.grad is not None and row.grad.abs().sum() > 0


def test_distill_is_the_kl_from_the_teachers_in_batch_distribution(model):
    loss = SearchR3Loss(model, temperature=0.5, teacher_temperature=0.25, distill_weight=1.0)
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    negatives = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    student = [anchors, positives, negatives]
    # Taught by itself at its own temperature there is nothing to learn.
    same = torch.cat([t.detach() for t in student], dim=1)
    loss.teacher_temperature = 0.5
    assert loss.distill(student, same).item() == pytest.approx(0.0, abs=1e-7)
    # A teacher in a space of its own (dim 3) that finds each anchor's negative closer than its positive.
    teacher_anchors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    teacher_positives = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    teacher = torch.cat([teacher_anchors, teacher_positives, teacher_anchors], dim=1)
    loss.teacher_temperature = 0.25
    value = loss.distill(student, teacher)
    t = F.softmax(torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]) / 0.25, dim=-1)
    s = F.log_softmax(torch.tensor([[1.0, 0.0, 0.6, 0.8], [0.0, 1.0, 0.8, 0.6]]) / 0.5, dim=-1)
    expected = (t * (t.log() - s)).sum(-1).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert anchors.grad.abs().sum() > 0

    with pytest.raises(ValueError, match="teacher's vectors as labels"):
        loss.distill(student, None)
    with pytest.raises(ValueError, match="teacher's vectors as labels"):
        loss.distill(student, torch.zeros(2, 7))


def test_distill_term_trains_through_the_model(model, texts):
    loss = only(model, "distill", temperature=0.05)
    features = batch(model, texts)
    torch.manual_seed(0)
    labels = F.normalize(torch.randn(4, 3, 8), dim=-1).flatten(1)
    terms = loss(features, labels)
    assert set(terms) == {"loss/distill"}, "only the terms whose weight is not 0"
    value = total(terms)
    assert torch.isfinite(value) and value.item() > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_terms_are_weighted_and_the_trainer_logs_each(model, texts, tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from st_search_r3.training.sft_data import ROUTES

    features = batch(model, texts)
    unweighted = SearchR3Loss(model, lm_weight=1.0, kl_weight=0)(features, None)
    weighted = SearchR3Loss(model, infonce_weight=2.0, lm_weight=0.5, kl_weight=0)(features, None)
    assert set(weighted) == {"loss/infonce", "loss/triplet", "loss/lm"}
    assert weighted["loss/infonce"].item() == pytest.approx(2 * unweighted["loss/infonce"].item(), rel=1e-5)
    assert weighted["loss/lm"].item() == pytest.approx(0.5 * unweighted["loss/lm"].item(), rel=1e-5)

    dataset = Dataset.from_dict(
        {"anchor": texts["queries"][:4], "positive": texts["documents"][:4], "negative": texts["documents"][2:6]}
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, logging_steps=1, report_to=[],
        save_strategy="no", use_cpu=True,
    )  # fmt: skip
    args.router_mapping = ROUTES["direct"]  # anchors without reasoning, as train/sft.py routes them
    loss = SearchR3Loss(model, lm_weight=0.1, kl_weight=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    trainer.train()
    rows = [row for row in trainer.state.log_history if "loss" in row]
    assert len(rows) == 2 and all({"loss/infonce", "loss/triplet", "loss/lm"} <= set(row) for row in rows)
    for row in rows:  # the logged loss is the sum of the logged terms
        assert row["loss"] == pytest.approx(row["loss/infonce"] + row["loss/triplet"] + row["loss/lm"], abs=2e-3)


GATHER_WORKER = """
import json, sys
import torch, torch.distributed as dist, torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from st_search_r3 import SearchR3
from st_search_r3.training.losses import SearchR3Loss

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model = SentenceTransformer(modules=[SearchR3(sys.argv[1], max_reasoning_tokens=8, max_seq_length=192)])
torch.manual_seed(0)  # the same global batch on every rank: 8 anchors, their positives, one hard negative each
columns = [F.normalize(torch.randn(8, 16, dtype=torch.float64), dim=-1) for _ in range(3)]
mine = [column[rank * 4 : (rank + 1) * 4].clone().requires_grad_() for column in columns]
loss = SearchR3Loss(model, temperature=0.1, distill_weight=1.0, gather_across_devices=True)
teacher = torch.cat([F.normalize(c[rank * 4 : (rank + 1) * 4] + 0.3, dim=-1) for c in columns], dim=1)
terms = {"infonce": loss.contrastive(mine)["infonce"], "distill": loss.distill(mine, teacher)}
result = {}
for name, value in terms.items():
    grads = torch.autograd.grad(value, mine)
    # DistributedDataParallel averages gradients over ranks: the global loss is the mean of the ranks' losses.
    values = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(values, value.detach().float())
    gathered = [[torch.zeros_like(g) for _ in range(world)] for g in grads]
    for g, out in zip(grads, gathered):
        dist.all_gather(out, g / world)
    result[name] = {"value": float(sum(values) / world), "grads": [torch.cat(out).tolist() for out in gathered]}
if rank == 0:
    open(sys.argv[2], "w").write(json.dumps(result))
dist.destroy_process_group()
"""


def test_gathered_infonce_on_two_processes_equals_one_process_on_the_whole_batch(model, tiny_llm, tmp_path):
    """torchrun --nproc_per_node 2 (gloo): the mean of the ranks' InfoNCE and distill terms, and their gradients
    as DistributedDataParallel averages them, equal one process's on the concatenated batch."""
    import json
    import os
    import subprocess
    import sys

    script, output = tmp_path / "worker.py", tmp_path / "result.json"
    script.write_text(GATHER_WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*command, tiny_llm, str(output)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    gathered = json.loads(output.read_text())

    torch.manual_seed(0)
    columns = [F.normalize(torch.randn(8, 16, dtype=torch.float64), dim=-1).requires_grad_() for _ in range(3)]
    loss = SearchR3Loss(model, temperature=0.1, distill_weight=1.0, gather_across_devices=True)
    teacher = torch.cat([F.normalize(c.detach() + 0.3, dim=-1) for c in columns], dim=1)
    one_process = {"infonce": loss.contrastive(columns)["infonce"], "distill": loss.distill(columns, teacher)}
    for name, value in one_process.items():
        grads = torch.autograd.grad(value, columns)
        assert gathered[name]["value"] == pytest.approx(value.item(), rel=1e-6)
        for theirs, ours in zip(gathered[name]["grads"], grads):
            torch.testing.assert_close(torch.tensor(theirs, dtype=torch.float64), ours, rtol=1e-9, atol=1e-12)
    # Without gathering each rank would contrast against its own 4 rows only: a different loss.
    local = SearchR3Loss(model, temperature=0.1).contrastive([c[:4] for c in columns])["infonce"]
    assert abs(local.item() - one_process["infonce"].item()) > 1e-3
