# Entropy maximization (lambda = 0.9) with the synthetic outlier proxy mixed
# in at 1:10. Unlike the paper (a fine-tune of a trained model), trained from
# scratch with the baseline's schedule, so that the variants compare at equal
# cost. The auxiliary head gets the same loss: proxy pixels are labelled 254,
# which plain cross entropy cannot take.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(
        loss_decode=dict(
            _delete_=True, type='EntropyMaximizationLoss', ood_weight=0.9)),
    auxiliary_head=dict(
        loss_decode=dict(
            _delete_=True,
            type='EntropyMaximizationLoss',
            ood_weight=0.9,
            loss_weight=0.4)))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OutlierMixDataset',
        ratio=0.1,
        dataset={{_base_.train_dataloader.dataset}},
        outlier=dict(
            type='OutlierProxyDataset',
            data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/objects/'
            'outlier_proxy',
            pipeline={{_base_.train_pipeline}})))
