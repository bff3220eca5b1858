// Every role the service's identity holds, from one map of built-in role-definition IDs.
// Names are deterministic guid(scope, principal, role), so redeploying is idempotent.

param principalId string
param storageAccountName string
param keyVaultName string
param appInsightsName string

@description('Grant Storage Queue Data Contributor (only if the app gets queue triggers or outputs).')
param useQueues bool = false

@description('Resource ID of an Azure OpenAI (Cognitive Services) account the proxy calls with this identity; empty for none.')
param openAiAccountId string = ''

// Built-in role definitions (IDs are the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  cognitiveServicesOpenAIUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
}

// ARM evaluates a skipped module's scope too: give it a well-formed ID when there is no account.
var openAiIdParts = split(empty(openAiAccountId) ? '${resourceGroup().id}/providers/Microsoft.CognitiveServices/accounts/none' : openAiAccountId, '/')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Host (timers' leases, AzureWebJobsStorage) and the Flex deployment container.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The service's tables (keys, deployments, audit, usage, ...); lets it create new ones too.
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useQueues) {
  name: guid(storage.id, principalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The master secret (read by the service) and the webhook secret (Key Vault reference).
resource keyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry ingestion with Entra auth (Application Insights has local auth disabled).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The account may live in another resource group or subscription: assign at its own scope.
module openAiUser 'openAiRoleAssignment.bicep' = if (!empty(openAiAccountId)) {
  name: 'liutong-openai-user'
  scope: resourceGroup(openAiIdParts[2], openAiIdParts[4])
  params: {
    accountName: last(openAiIdParts)
    principalId: principalId
    roleDefinitionGuid: roles.cognitiveServicesOpenAIUser
  }
}
