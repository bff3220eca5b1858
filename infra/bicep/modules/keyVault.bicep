// Key Vault with RBAC authorisation, soft delete and purge protection. It holds the key-derivation
// master secret and the Marketplace webhook secret; each is generated here (never a literal) when it
// does not exist yet, and left alone afterwards, so redeploying never rotates one by accident.

param name string
param location string
param tags object = {}

@description('Create the master secret (a fresh random value). Only when it does not exist yet: deploy.sh checks.')
param createMasterSecret bool = false

@description('Create the webhook secret (a fresh random value). Only when it does not exist yet: deploy.sh checks.')
param createWebhookSecret bool = false

param masterSecretName string
param webhookSecretName string

@secure()
@description('Random input for the master secret (122 bits from newGuid(), per seed).')
param masterSecretSeed string

@secure()
@description('Random input for a second half of the master secret.')
param masterSecretSeed2 string

@secure()
@description('Random input for the webhook secret; hex only, so it can sit in a URL query unescaped.')
param webhookSecretSeed string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:no firewall: Flex Consumption without VNet integration reaches the vault over its public endpoint; access is Entra RBAC only
    // checkov:skip=CKV_AZURE_189:public endpoint needed for the same reason (App Service Key Vault references and the service's own reads)
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

module masterSecret 'secret.bicep' = if (createMasterSecret) {
  name: 'liutong-secret-master'
  params: {
    vaultName: vault.name
    name: masterSecretName
    // 64 hex characters: 244 random bits from two GUIDs.
    value: replace('${masterSecretSeed}${masterSecretSeed2}', '-', '')
  }
}

module webhookSecret 'secret.bicep' = if (createWebhookSecret) {
  name: 'liutong-secret-webhook'
  params: {
    vaultName: vault.name
    name: webhookSecretName
    // 32 hex characters (122 random bits); hex needs no escaping in the notification URL.
    value: replace(webhookSecretSeed, '-', '')
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless: the app follows the latest version (App Service re-reads it within 24 h, or at once on a config change).
output webhookSecretUri string = '${vault.properties.vaultUri}secrets/${webhookSecretName}'
